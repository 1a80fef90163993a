"""What each action does: TioneService implements the generated TioneApi, one method per action."""

from tione_server.service.service import TioneService

__all__ = ["TioneService"]
