"Part 4, hands-on projects (chapters 40-47)."
