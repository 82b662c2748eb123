"""``python -m sr_deploy.cli ...`` (and ``torchrun -m sr_deploy.cli train srresnet ...``)."""

from sr_deploy.cli import main

if __name__ == "__main__":
    main()
