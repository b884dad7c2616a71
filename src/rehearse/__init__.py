"""``make rehearse``: the paper runbook run end to end on stand-in data with width-shrunk backbones."""
