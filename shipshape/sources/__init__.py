"""Extract implementations: each reads one kind of source in bounded chunks of raw values."""
