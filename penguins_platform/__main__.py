from penguins_platform.runtime import exit_without_final_collection, tune_garbage_collector

tune_garbage_collector()

from penguins_platform.cli import main  # noqa: E402 (the collector is tuned first)

exit_without_final_collection(main())
