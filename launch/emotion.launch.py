"""Launch the synctva_ros emotion node.

    ros2 launch synctva_ros emotion.launch.py [namespace:=/robot] [use_sim_time:=true]
        [profile:=quality] [backend:=onnxruntime] [params_file:=/path/emotion.yaml] [log_level:=info]

Arguments:
    params_file   ROS params file (default: share/synctva_ros/config/emotion.yaml).
    namespace     namespace of the node and its relative topics (default: none).
    use_sim_time  follow /clock (true when replaying a bag with --clock).
    profile       runtime.profile: config/profiles/<name>.yaml supplies the other defaults (default quality:
                  all-mpnet-base-v2, models/meld_mpnet; demo: the lighter all-MiniLM-L6-v2, models/meld_minilm).
    backend       runtime.backend (torch, onnxruntime, tensorrt, triton); empty keeps the profile's.
    log_level     rcutils log level of the node (debug, info, warn, error, fatal).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "synctva_ros"
EXECUTABLE = "emotion_node"


def _node(context, *args, **kwargs):
    """Build the node action; ``backend`` is passed only when set, so the profile's stays otherwise."""
    overrides = {
        "use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1"),
        "runtime.profile": LaunchConfiguration("profile").perform(context),
    }
    backend = LaunchConfiguration("backend").perform(context)
    if backend:
        overrides["runtime.backend"] = backend
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="emotion_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    """Declare the arguments and the emotion node."""
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "emotion.yaml"]),
            description="ROS params file of the node"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="Use /clock (bag replay)"),
        DeclareLaunchArgument("profile", default_value="quality",
                              description="runtime.profile: a profile name in config/profiles"),
        DeclareLaunchArgument("backend", default_value="",
                              description="runtime.backend (torch, onnxruntime, tensorrt, triton); empty = profile's"),
        DeclareLaunchArgument("log_level", default_value="info", description="Log level of the node"),
        OpaqueFunction(function=_node),
    ])
