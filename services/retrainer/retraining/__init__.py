"""Governed retraining: when to retrain, the runs, and the pipeline that makes a candidate.

Pure modules decide (``triggers``, ``recipes``, ``training``, ``training_data``, ``pipeline``,
``gate``, ``dataset_changes``, ``regression_metrics``); ``runs``, ``live_examples``,
``step_store`` and ``tables`` keep state; ``schedules`` and ``worker`` are the background tasks;
``api`` and ``cli`` (``vigil retrain``) face people. A candidate that passes the gate goes on to
:mod:`services.retrainer.rollout`.
"""
