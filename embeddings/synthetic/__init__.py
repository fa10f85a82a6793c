"""A seeded synthetic world with planted structure, for the demo and for every test.

:func:`make_world` (:mod:`~embeddings.synthetic.world`) builds the shop
(:mod:`~embeddings.synthetic.shop`) and the cards (:mod:`~embeddings.synthetic.cards`) for a
:class:`WorldConfig` (:mod:`~embeddings.synthetic.config`).
"""

from embeddings.synthetic.config import WorldConfig
from embeddings.synthetic.world import World, make_world

__all__ = ["World", "WorldConfig", "make_world"]
