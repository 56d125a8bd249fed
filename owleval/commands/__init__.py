"""Sub-commands of the ``owleval`` command line; each module has ``register(app)``."""
