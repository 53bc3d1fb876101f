"""Beyond one teacher: several teachers (``models.teachers``), deep mutual learning (``models.students``) and
born-again generations (``train.born_again``, ``teacher.from_student_of_stage``)."""
from .groups import SideGroup, TeacherOutputs, model_sides

__all__ = ["SideGroup", "TeacherOutputs", "model_sides"]
