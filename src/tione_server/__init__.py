"""tione-server: a self-hosted service that answers Tencent Cloud TI-ONE's training-task API (2021-11-11)."""

__version__ = "0.1.0"
