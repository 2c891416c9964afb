"""The physics of one deployment: architecture from config.json, memory, speed, quality, and the
`estimate` API over them. Pure functions of knowledge and inputs."""
