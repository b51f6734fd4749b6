# Included by the stand-in message packages here after their find_package() calls (never in a ROS install:
# these packages are built only by the Makefile's no-ROS-install route; COLCON_IGNORE keeps colcon away).
# Same fix as the top-level CMakeLists.txt (ENVIRONMENT.md pitfall): the exported
# <pkg>__rosidl_generator_py targets of the PyPI ROS wheels carry include directories of the wheel
# builder (/opt/python/cpXY-cpXY/...); drop every nonexistent one and add this interpreter's Python
# and NumPy include directories instead.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
function(third_party_fix_imported_include_dirs)
  get_directory_property(_imported IMPORTED_TARGETS)
  foreach(_target IN LISTS _imported)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped FALSE)
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        set(_dropped TRUE)
      endif()
    endforeach()
    if(_dropped)
      if(_target MATCHES "__rosidl_generator_py$")
        list(APPEND _kept ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      endif()
      list(REMOVE_DUPLICATES _kept)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()
third_party_fix_imported_include_dirs()
