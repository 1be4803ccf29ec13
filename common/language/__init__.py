"""Text about IMU windows and activities: prompts and the answer format, the interpreter contract, the rules
interpreter, the language-model service (llm/), its answer cache, label knowledge and re-generation.
Imports common.base and common.data."""
