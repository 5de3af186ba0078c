"""What a person sees after a launch: learner player, instructor dashboard, deep-linking picker."""
