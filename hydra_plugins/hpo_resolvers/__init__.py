"""Registers the project's OmegaConf resolvers wherever Hydra looks for plugins.

DVC's Hydra integration (``dvc exp run -S key=value``) composes ``conf/`` into ``params.yaml`` in
its own process, which never imports ``src``; Hydra imports every module of the ``hydra_plugins``
namespace it finds on the path (DVC adds the repository root), and this one brings the resolvers.
"""

import src.resolvers  # noqa: F401
