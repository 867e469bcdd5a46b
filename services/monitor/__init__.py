"""The monitor: live model metrics against each version's maintenance instructions.

It joins predictions with late-arriving labels, computes windowed metrics per model, version and
variant, raises and recovers alerts when a watched metric or the low-confidence rate crosses its
threshold, probes the scorer with each model's golden set on a schedule, and compares a
challenger with its champion on live labels with a significance test.
"""
