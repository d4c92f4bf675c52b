"Training layer (`learner`: the loop, its errors, precision, schedules, metrics, the default callbacks) and the training callbacks above it (`checkpoint`, `distributed`, `performance`)."
