"""A small module with a few bugs, for trying the AI code actions, hover and review."""


def mean(values):
    total = 0
    for value in values:
        total += value
    return total / len(values)


def read_numbers(path):
    handle = open(path)
    numbers = [float(line) for line in handle if line.strip()]
    if not numbers:
        raise ValueError("no numbers in " + path)
    return numbers


class Summary:
    def __init__(self, values):
        self.values = values

    def spread(self): return max(self.values) - min(self.values)


print(mean(read_numbers("data.txt")))
