"""Testing helpers and the flatjobs pytest plugin (fixtures arrive with the emulator)."""
