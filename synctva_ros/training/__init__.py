"""Training Sync-TVA on feature caches (``synctva train``, ``synctva baseline``).

* :mod:`.train`: the one training loop (frozen encoder or fine-tuned text top layers), selection on a
  validation split cut from the training dialogues, the report split scored once; several seeds.
* :mod:`.config`: the ``training:`` section (:class:`~.config.TrainingConfig`) and the YAML loader.
* :mod:`.split`: the validation split by dialogue, seeded.
* :mod:`.caches`: finding a run's caches; deriving a text-layer cache for top-k fine-tuning.
* :mod:`.prepare`: splits, datasets and the model (with its pretrained top layers) before the first step.
* :mod:`.saving`: the size-checked checkpoint and ``metrics.json``; :mod:`.seeds`: ``seeds.json``.
* :mod:`.data`: batches and dialogue context; :mod:`.baseline`: the logistic-regression floor.
"""
