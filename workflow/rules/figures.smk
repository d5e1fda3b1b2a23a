def figures_all():
    return []
