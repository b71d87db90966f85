"""The rehearsal's patches of moto come off as they went on, so a later moto in the same
process (another test's) is moto itself."""

from moto.ecs.models import EC2ContainerServiceBackend

from penguins_platform.rehearsal.aws import Patches


def test_undo_restores_a_static_method_as_a_static_method_and_removes_what_was_added():
    name = "_calculate_task_resource_requirements"
    before = vars(EC2ContainerServiceBackend)[name]
    patches = Patches()
    patches.setattr(EC2ContainerServiceBackend, name, staticmethod(lambda definition: {}))
    patches.setattr(EC2ContainerServiceBackend, "update_endpoint", object(), raising=False)

    patches.undo()

    assert vars(EC2ContainerServiceBackend)[name] is before
    assert isinstance(before, staticmethod)
    assert not hasattr(EC2ContainerServiceBackend, "update_endpoint")
