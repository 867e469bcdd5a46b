"""The drift detector: tests each window of live features and scores against the reference
profile of the model version that scored them, reports every window on ``drift``, and raises one
alert per drift episode on ``alerts`` (and its recovery)."""
