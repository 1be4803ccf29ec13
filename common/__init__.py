"""The method's code, in layers; each sub-package's docstring says what it owns and what it may import.

    base        seeds, threads, logging, metrics, paths, device        imports nothing of ours
    data        IMU windows: containers, files, archives, labels,      base
                device types, synthetic data, signal analysis
    language    text about windows and labels: prompts, the rules      base, data
                interpreter, LLM service, answer cache, knowledge
    models      text encoder, sensor encoder, losses, zero-shot        base, data
                label bank, export
    method      LanHAR's stages: training loops and the steps that     base, data, language, models
                tie interpretation, encoders and labels together
    federation  what server and clients share: run config, message     all of the above
                records, which data each client holds

client/ and server/ import common/ and Flower only; simulations/ may import everything. The rule is checked
by tests/test_architecture.py.
"""
