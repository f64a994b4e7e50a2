"""``make gpu-check``: one prepared run of every GPU claim of the course in about eight minutes.

``python -m mmcourse.gpu_check`` runs, each step in its own process with its own time budget: the CUDA tests
(``pytest -m cuda``), the benchmark ladder and the ResNet-18 MFU (:mod:`.measure`), the chapters in the full
profile (:mod:`.chapters`, chapter 13 first), and writes one results file that ``mmcourse bench ingest`` turns
into ``benchmarks/RESULTS.md`` rows (:mod:`.report`). ``--dry-run`` runs the same steps at toy sizes on a CPU;
``tests/test_gpu_check.py`` runs it so that the script cannot rot. ``benchmarks/GPU.md`` says how to use it.

Needs only torch, numpy, matplotlib and pytest (and the course's own light dependencies): notebooks are
executed cell by cell from their JSON, with stand-ins for IPython's ``display`` and ipywidgets, no kernel.
"""
