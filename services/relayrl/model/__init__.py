"""Policy models: building the tiny model, loading and saving Hugging Face directories."""
