"""Method-agnostic machinery: errors, config (de)serialisation, the registry, the ZooModule base.

Only ``errors``, ``config``, ``registry`` and ``model_table`` are imported eagerly; ``module`` and
``serialization`` pull in torch and lightning and are imported on demand.
"""
