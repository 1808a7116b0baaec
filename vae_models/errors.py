"""The library's exceptions that callers act on. (ConfigError lives in blocks.py, CheckpointError in base.py.)"""


class Unsupported(NotImplementedError):
    """This model does not support what was asked of it: unconditional samples from a quadrant-completion model,
    a latent code from a deterministic baseline, a likelihood from a model without one. The one exception that
    callers (trainer previews, the app) catch to skip a feature; anything else is a real error."""
