"Part 6, from language model to assistant (chapters 60-): a modern small LLM, its tokenizer and inference engine, then the assistant."
