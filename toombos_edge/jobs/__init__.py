"""Jobs: the model and its states, the kinds registry, and the engine that runs them."""
