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
    "cvae": [{}, {"backbone": "conv", "hidden_dims": [16], "likelihood": "continuous_bernoulli"}],
    "dvae": [
        {"corruption": "salt_and_pepper", "noise_level": 0.3},
        {"corruption": "gaussian", "noise_level": 0.2, "likelihood": "gaussian"},
        {"corruption": "block", "noise_level": 0.5, "backbone": "conv", "hidden_dims": [16]},
    ],
    "socvae": [
        {"objective": "cvae"},
        {"objective": "gsnn", "num_given_quadrants": 1},
        {"objective": "hybrid", "alpha": 0.5, "num_given_quadrants": 3},
        {"objective": "hybrid", "alpha": 0.2, "backbone": "conv", "hidden_dims": [16]},
    ],
    "quadrant_nn": [{}, {"num_given_quadrants": 2, "backbone": "conv", "hidden_dims": [16]}, {"net_per_setting": True}],
    "avb": [
        {"discriminator_hidden_dims": [32], "noise_dim": 4},
        {"discriminator_hidden_dims": [32], "adaptive_contrast": True, "contrast_samples": 4},
        {"backbone": "conv", "hidden_dims": [16], "discriminator_hidden_dims": [16], "likelihood": "gaussian"},
    ],
    "aae": [
        {"discriminator_hidden_dims": [32]},
        {"discriminator_hidden_dims": [32], "posterior": "gaussian", "adversarial_weight": 0.5},
        {"discriminator_hidden_dims": [32], "latent_dim": 2, "prior": "mixture10", "supervised_prior": True},
        {"discriminator_hidden_dims": [32], "latent_dim": 2, "prior": "swiss_roll", "posterior": "universal"},
        {"backbone": "conv", "hidden_dims": [16], "discriminator_hidden_dims": [16], "latent_dim": 2,
         "prior": "mixture10"},
    ],
    "categorical_aae": [
        {"discriminator_hidden_dims": [32], "num_clusters": 6},
        {"discriminator_hidden_dims": [32], "num_clusters": 10, "semi_supervised": True, "latent_dim": 2},
        {"backbone": "conv", "hidden_dims": [16], "discriminator_hidden_dims": [16], "num_clusters": 3},
    ],
    "classifier": [{"backbone": "conv", "hidden_dims": [8, 16], "latent_dim": 16}],
}
