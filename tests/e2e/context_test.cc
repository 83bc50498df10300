// Placeholder: filled in by the engineer working on this file.
