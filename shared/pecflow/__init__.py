"""pecflow: PEC mailboxes on AWS serverless. The core package (pure domain + adapters)."""

__version__ = "0.1.0"
