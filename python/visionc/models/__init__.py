"""Model families. Each registers its classes in auto.FAMILIES."""
