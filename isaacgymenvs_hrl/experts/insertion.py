class InsertionExpert:  # placeholder replaced below
    pass
