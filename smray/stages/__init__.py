"""The stages of smray, one module each, all with the same face (:mod:`smray.stages.base`):

==============  ===========================================  ===============================
module          reads                                        writes (``paths``)
==============  ===========================================  ===============================
``twin``        ``synth``, ``grid``                          ``twin`` (the twin archive)
``ingest``      ``tb``, ``ref`` for the days of ``ingest``   ``cube``
``train``       ``cube`` for the days of ``train``           ``models`` (one run per kind)
``predict``     ``cube``, ``models`` for ``predict``         ``maps`` (one store per kind)
``evaluate``    ``maps``, ``cube``, ``twin``, ``ismn``       ``report``
``experiment``  ``cube``, ``twin`` (the paper's protocol)    ``experiment``
==============  ===========================================  ===============================

``run(cfg, progress, *, force=False) -> StageSummary`` computes what is not done;
``state(cfg) -> StageState`` says whether it is done and why, in one line. The command line, the
``pipelines/`` entrypoints and the chain (:mod:`smray.stages.chain`) call the same ``run``;
:mod:`smray.stages.layout` resolves every URL and period from the one ``paths`` section.
"""
