"Part 2, the math (chapters 20-24)."
