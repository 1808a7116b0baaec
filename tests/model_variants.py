"""Tiny configurations of every model, for the shared parametrised suite in test_models.py.

Each entry: model_type -> list of config-field dicts applied on top of TINY (a small MLP). Add every option that
changes the computation (backbone, likelihood, objective, prior, posterior kind, ...)."""

TINY = {"hidden_dims": [32], "latent_dim": 4}

VARIANTS: dict[str, list[dict]] = {
    "ae": [{}, {"backbone": "conv", "hidden_dims": [16]}],
    "vae": [
        {},
        {"backbone": "conv", "hidden_dims": [16]},
        {"likelihood": "continuous_bernoulli"},
        {"likelihood": "gaussian", "gaussian_std": 0.2},
        {"beta": 4.0, "activation": "tanh"},
    ],
}
