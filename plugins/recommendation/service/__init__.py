"""The recommendation plugin's logic, one module per concern; no GraphQL here.

- ``settings``: the plugin's settings (blend weights, decay, thresholds).
- ``data``: what a rebuild learns from (:class:`TrainingData`), loaded from the shop.
- ``components``: the models, fitted from training data (pure numpy/scipy/scikit-learn).
- ``store``: the fitted models as serving reads them (:class:`ModelStore`): from the database
  (``SqlStore``) or from memory (``MemoryStore``, offline evaluation).
- ``rebuild``: fit every component and write a new build (the job ``recommendation.rebuild``).
- ``hybrid``: candidates from every component, blended and re-ranked (serving and evaluation).
- ``serving``: one request: the visitor, the business rules, pins, impressions.
- ``tracking``: clicks and conversions; click-through and conversion per context/component.
- ``evaluation``: the offline report against baselines (``shopgraph recommend evaluate``).
"""
