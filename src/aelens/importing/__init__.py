"""From a lab's videos and pose files to crops and conditions: video, pose readers by format, kinematics, heading check, crops, the import plan and the importer."""
