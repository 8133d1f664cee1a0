"""Example custom modules: importing this package registers ``small_cnn`` as a backbone."""
