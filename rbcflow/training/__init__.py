"""Training and judging the two classifiers (imports torch; nothing here is needed to analyse).

* :mod:`~rbcflow.training.loop`: :func:`~rbcflow.training.loop.train` one stage's network,
  :func:`~rbcflow.training.loop.model_config` for its model folder;
* :mod:`~rbcflow.training.batching`: labelled sequences -> network inputs, class-balanced and
  augmented epoch samples;
* :mod:`~rbcflow.training.augment`: label-preserving augmentation, synthetic unreliable cases;
* :mod:`~rbcflow.training.metrics`: stage targets and binary metrics (paper conventions);
* :mod:`~rbcflow.training.evaluation`: both stages scored on labelled sequences.

Settings are :class:`rbcflow.model_settings.TrainConfig`. This ``__init__`` imports nothing:
import the module you need.
"""
