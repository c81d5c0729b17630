"""Providers: one module per provider behind ``base.Provider``; ``factory`` builds them from config."""
