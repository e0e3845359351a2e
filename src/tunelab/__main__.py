"""`python -m tunelab`, so `accelerate launch -m tunelab` and `torchrun -m tunelab` work too."""

from tunelab.cli import main

raise SystemExit(main())
