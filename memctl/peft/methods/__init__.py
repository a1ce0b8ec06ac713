"""One module per PEFT method, each defining `METHOD`; peft.registry names them."""
