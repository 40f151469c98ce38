"""Request bodies that show what a job looks like: the OpenAPI document's examples, the demo's workflow and the
tests start from them."""

RANGE_TEST_EXAMPLE = {
    "model": {"architecture": "seed_cnn"},
    "dataset": {"name": "digits"},
    "optimizer": {"name": "sgd", "momentum": 0.9},
    "batch_size": 50,
    "start_lr": 0.0001,
    "end_lr": 1.0,
    "epochs": 3,
}
RANGE_TEST_EXAMPLES = {
    "article": {"summary": "The seed article's range test", "value": RANGE_TEST_EXAMPLE},
    "verified": {
        "summary": "A range test whose suggestion is checked by training: five bound pairs from the curve, one cycle "
                   "of 4 epochs each from the same initial weights, the best on the validation split suggested",
        "value": RANGE_TEST_EXAMPLE | {"validation_split": 0.1, "verify": {"candidates": 5, "epochs": 4}},
    },
}
TRAINING_EXAMPLES = {
    "bounds": {
        "summary": "CLR with given bounds, step size in epochs",
        "value": {
            "model": {"architecture": "seed_cnn"},
            "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd"},
            "batch_size": 50,
            "epochs": 4,
            "validation_split": 0.2,
            "clr": {"base_lr": 0.0001, "max_lr": 0.01, "step_size_epochs": 2, "mode": "triangular", "shape": "linear"},
        },
    },
    "one_cycle": {
        "summary": "Smith's 1cycle policy instead of CLR, momentum cycled against it (or `cosine_restarts`, SGDR)",
        "value": {
            "model": {"architecture": "mlp"},
            "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "momentum": 0.9},
            "batch_size": 32,
            "epochs": 4,
            "schedule": {"policy": "one_cycle", "max_lr": 0.1, "pct_start": 0.3, "cycle_momentum": True,
                         "base_momentum": 0.85, "max_momentum": 0.95},
        },
    },
    "range_test": {
        "summary": "CLR with the bounds a finished range test suggested, for two whole cycles",
        "value": {
            "model": {"architecture": "mlp"},
            "dataset": {"name": "digits"},
            "optimizer": {"name": "adam"},
            "batch_size": 32,
            "cycles": 2,
            "range_test_id": "<id>",
            "clr": {"step_size_epochs": 2, "mode": "triangular2"},
        },
    },
    "verified_range_test": {
        "summary": "One request: a range test on the job's own model and data, its bounds verified by training "
                   "(`verify: true`: the defaults), then CLR training with the best of them",
        "value": {
            "model": {"architecture": "seed_cnn"},
            "dataset": {"name": "digits"},
            "optimizer": {"name": "sgd", "momentum": 0.9},
            "batch_size": 32,
            "validation_split": 0.1,
            "cycles": 1,
            "range_test": {"start_lr": 0.0001, "end_lr": 1.0, "epochs": 8, "verify": True},
            "clr": {"step_size_epochs": 4},
        },
    },
}

COMPARISON_EXAMPLES = {
    "table1": {
        "summary": "Smith's Table 1 on your data: a fixed rate, CLR with a range test's bounds and 1cycle, two seeds "
                   "each, at the same budget",
        "value": {
            "training": {"model": {"architecture": "seed_cnn"}, "dataset": {"name": "digits"},
                         "optimizer": {"name": "sgd", "momentum": 0.9}, "batch_size": 50, "epochs": 8,
                         "validation_split": 0.2},
            "arms": [
                {"name": "fixed", "schedule": {"policy": "constant", "lr": 0.01}},
                {"name": "clr", "clr": {"step_size_epochs": 2},
                 "range_test": {"start_lr": 0.0001, "end_lr": 1.0, "epochs": 2}},
                {"name": "one_cycle", "schedule": {"policy": "one_cycle", "max_lr": 0.1}},
            ],
            "seeds": [0, 1],
        },
    },
}
EXAMPLES = {"range_test": RANGE_TEST_EXAMPLES, "training": TRAINING_EXAMPLES,
            "comparison": COMPARISON_EXAMPLES}  # by job kind, for its submit route
