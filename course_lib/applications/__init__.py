"Part 5, applications (chapters 50-55)."
