"""The networks and their losses: text encoder, sensor encoder, loss modules (each an nn.Module returning a
dict), the zero-shot label bank and the deployment export. Imports common.base and common.data."""
