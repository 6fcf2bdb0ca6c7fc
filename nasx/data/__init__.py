"""CIFAR-10 readers, the uint8 cache, seeded splits and the device-resident loader."""
