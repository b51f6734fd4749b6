# Included by this package's CMakeLists.txt and by the stand-in message packages in third_party_msgs/ after
# their find_package() calls (ENVIRONMENT.md pitfall of the PyPI ROS wheels).
# ---------------------------------------------------------------------------
# PyPI ROS wheels: their exported <pkg>__rosidl_generator_py targets carry the
# include directories of the machine that built the wheel (/opt/python/cpXY-cpXY/...),
# which do not exist here, and CMake's generate step aborts on them. Drop every
# nonexistent include dir from imported targets and, where something was dropped,
# add this interpreter's Python and NumPy include dirs instead. On a normal ROS
# install every path exists, so nothing is changed there.
# ---------------------------------------------------------------------------
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
function(pypi_wheel_fix_imported_include_dirs)
  get_directory_property(_imported IMPORTED_TARGETS)
  set(_python_dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
  foreach(_target IN LISTS _imported)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped FALSE)
    foreach(_dir IN LISTS _dirs)
      # keep generator expressions untouched; drop only plain paths that do not exist
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        set(_dropped TRUE)
      endif()
    endforeach()
    if(_dropped)
      if(_target MATCHES "__rosidl_generator_py$")
        list(APPEND _kept ${_python_dirs})
      endif()
      list(REMOVE_DUPLICATES _kept)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
      message(STATUS "${PROJECT_NAME}: replaced nonexistent include dirs of imported target ${_target}")
    endif()
  endforeach()
endfunction()
pypi_wheel_fix_imported_include_dirs()
