"Part 1, concepts (chapters 10-13)."
