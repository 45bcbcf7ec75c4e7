"""Registers the project's OmegaConf resolvers wherever Hydra looks for plugins.

DVC's Hydra integration (``dvc exp run -S key=value``) composes ``conf/`` into ``params.yaml`` in
its own process, which never imports ``hpo_tune``; Hydra imports every module of the ``hydra_plugins``
namespace it finds on the path (the installed package, ``pip install -e .``), and this one brings the resolvers.
"""

import hpo_tune.resolvers  # noqa: F401
