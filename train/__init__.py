"""Training: backbones, features, few-shot heads (torch only where a torch backbone is used)."""
