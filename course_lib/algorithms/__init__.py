"Part 3, the algorithms (chapters 30-35)."
