/*
 * risk_table.c — what the risk check (risk.h) knows about commands: the
 * rules that rate a program by its subcommand and options, the wrappers
 * that run another command, and the interpreters a download may be piped
 * into. Shapes and matching are described in risk_table.h.
 */
#include "risk_table.h"

#define SAFE CLI_RISK_SAFE
#define CAUTION CLI_RISK_CAUTION
#define DANGEROUS CLI_RISK_DANGEROUS

const struct risk_rule risk_rules[] = {
    /* deleting */
    {"rm", NULL, NULL, CAUTION, "deletes files (rm)"},
    {"rm", NULL, "-r -R --recursive", DANGEROUS, "deletes whole directory trees (rm -r)"},
    {"rm", NULL, "--no-preserve-root", DANGEROUS,
     "may delete everything under / (rm --no-preserve-root)"},
    {"rmdir unlink", NULL, NULL, CAUTION, "removes files or directories"},
    {"shred srm wipe", NULL, NULL, DANGEROUS, "destroys file contents beyond recovery"},
    {"find", NULL, "-delete", DANGEROUS, "deletes every file it finds (find -delete)"},
    {"git", "clean", "-f --force", DANGEROUS, "deletes untracked files for good (git clean -f)"},
    {"rsync", NULL, NULL, CAUTION, "copies files, replacing existing ones (rsync)"},
    {"rsync", NULL, "--delete*", DANGEROUS, "deletes files at the destination (rsync --delete)"},
    {"rsync", NULL, "--remove-source-files", CAUTION, "deletes the source files it copied"},
    {"crontab", NULL, "-r", DANGEROUS, "deletes all your cron jobs (crontab -r)"},
    /* disks and filesystems */
    {"mkfs mkfs.* mke2fs mkswap mkdosfs mkntfs", NULL, NULL, DANGEROUS,
     "formats a filesystem, erasing what it holds"},
    {"wipefs", NULL, NULL, DANGEROUS, "erases filesystem signatures (wipefs)"},
    {"fdisk sfdisk cfdisk gdisk sgdisk parted", NULL, NULL, DANGEROUS,
     "changes a disk's partition table"},
    {"dd", NULL, NULL, CAUTION, "copies raw data (dd)"},
    {"dd", NULL, "of=*", DANGEROUS, "writes raw data over its output file or disk (dd of=)"},
    {"cryptsetup", "luksFormat erase reencrypt", NULL, DANGEROUS,
     "erases or rewrites an encrypted volume"},
    {"lvremove vgremove pvremove", NULL, NULL, DANGEROUS, "deletes LVM volumes"},
    {"zpool zfs", "destroy", NULL, DANGEROUS, "destroys a ZFS pool or dataset"},
    {"mount umount swapon swapoff losetup", NULL, NULL, CAUTION, "mounts or unmounts filesystems"},
    /* permissions and ownership */
    {"chmod", NULL, NULL, CAUTION, "changes file permissions (chmod)"},
    {"chmod", NULL, "-R --recursive", DANGEROUS, "changes permissions of a whole tree (chmod -R)"},
    {"chown chgrp", NULL, NULL, CAUTION, "changes file ownership"},
    {"chown chgrp", NULL, "-R --recursive", DANGEROUS, "changes ownership of a whole tree (-R)"},
    {"chattr setfacl", NULL, NULL, CAUTION, "changes file attributes"},
    /* changing files */
    {"mv", NULL, NULL, CAUTION, "moves files, replacing existing ones (mv)"},
    {"cp", NULL, NULL, CAUTION, "copies files, replacing existing ones (cp)"},
    {"ln", NULL, "-f --force", CAUTION, "replaces existing files (ln -f)"},
    {"truncate", NULL, NULL, CAUTION, "cuts files to a size (truncate)"},
    {"tee", NULL, NULL, CAUTION, "writes its input into files (tee)"},
    {"sed", NULL, "-i --in-place*", CAUTION, "edits files in place (sed -i)"},
    {"perl", NULL, "-i", CAUTION, "edits files in place (perl -i)"},
    {"tar", NULL, "-x --extract --get", CAUTION,
     "extracts files, replacing existing ones (tar -x)"},
    {"unzip", NULL, "-o", CAUTION, "extracts files, replacing existing ones (unzip -o)"},
    {"patch", NULL, NULL, CAUTION, "changes files (patch)"},
    /* git history */
    {"git", "push", NULL, CAUTION, "publishes commits to a remote (git push)"},
    {"git", "push", "-f --force --force-with-lease* --force-if-includes --mirror --delete -d +* :*",
     DANGEROUS, "rewrites or deletes history on the remote (git push --force)"},
    {"git", "reset", "--hard", DANGEROUS, "discards uncommitted changes (git reset --hard)"},
    {"git", "checkout", "-f --force -- .", CAUTION, "discards uncommitted changes (git checkout)"},
    {"git", "restore", NULL, CAUTION, "discards uncommitted changes (git restore)"},
    {"git", "branch", "-d -D --delete", CAUTION, "deletes branches (git branch -d)"},
    {"git", "stash", "drop clear", CAUTION, "deletes stashed changes (git stash drop)"},
    {"git", "rebase", NULL, CAUTION, "rewrites commit history (git rebase)"},
    {"git", "commit", "--amend", CAUTION, "rewrites the last commit (git commit --amend)"},
    {"git", "filter-branch filter-repo", NULL, DANGEROUS, "rewrites the whole history"},
    /* processes and the machine */
    {"kill killall pkill skill", NULL, NULL, CAUTION, "stops processes"},
    {"shutdown reboot poweroff halt", NULL, NULL, DANGEROUS, "shuts down or restarts the machine"},
    {"systemctl", "poweroff reboot halt kexec", NULL, DANGEROUS,
     "shuts down or restarts the machine"},
    {"systemctl", "suspend hibernate hybrid-sleep", NULL, CAUTION, "suspends the machine"},
    {"systemctl", "stop disable mask kill restart isolate", NULL, CAUTION,
     "stops or disables services"},
    {"init telinit", "0 6", NULL, DANGEROUS, "shuts down or restarts the machine"},
    {"sysctl", NULL, "-w --write -p --load*", CAUTION, "changes kernel settings (sysctl)"},
    {"modprobe insmod rmmod", NULL, NULL, CAUTION, "loads or unloads kernel modules"},
    {"iptables ip6tables nft ufw firewall-cmd", NULL, NULL, CAUTION, "changes the firewall"},
    /* software */
    {"apt apt-get aptitude dnf yum zypper snap flatpak",
     "install remove purge autoremove upgrade dist-upgrade full-upgrade erase reinstall uninstall",
     NULL, CAUTION, "installs or removes software"},
    {"dpkg", NULL, "-i -r -P --install --remove --purge", CAUTION, "installs or removes software"},
    {"pacman", NULL, "-S -R -U", CAUTION, "installs or removes software"},
    {"pip pip3 pipx", "install uninstall", NULL, CAUTION, "installs or removes Python packages"},
    {"npm pnpm", NULL, "-g --global", CAUTION, "installs or removes packages for the whole system"},
    {"make", "install uninstall", NULL, CAUTION, "installs or removes software (make install)"},
    /* accounts */
    {"userdel groupdel deluser delgroup", NULL, NULL, CAUTION, "deletes accounts"},
    {"userdel deluser", NULL, "-r --remove --remove-home", DANGEROUS,
     "deletes an account with its home directory"},
    {"useradd adduser usermod groupadd groupmod passwd chpasswd chsh visudo", NULL, NULL, CAUTION,
     "changes user accounts"},
    /* network, history, containers */
    {"nc ncat netcat", NULL, "-e -c --exec --sh-exec", DANGEROUS, "hands a shell to the network"},
    {"history", NULL, "-c", CAUTION, "clears the shell history"},
    {"docker podman", "rm rmi kill stop", NULL, CAUTION, "removes or stops containers or images"},
    {"docker podman", "system volume image container network builder", "prune rm", CAUTION,
     "deletes containers, images or volumes"},
    {"docker podman", "run", "--privileged", CAUTION,
     "runs a container with full access to the machine"},
};

const size_t risk_n_rules = sizeof risk_rules / sizeof risk_rules[0];

const struct risk_wrapper risk_wrappers[] = {
    {"sudo",
     "-u -g -C -D -h -p -r -t -U -T --user --group --close-from --chdir --host --prompt "
     "--role --type --other-user --command-timeout",
     0, true, false, false},
    {"doas", "-u -C", 0, true, false, false},
    {"pkexec", "--user", 0, true, false, false},
    {"run0", "-u --user -g --group -D --chdir --setenv --unit --property --slice", 0, true, false,
     false},
    {"su", "-s -g -G -w --shell --group --supp-group --whitelist-environment", 0, true, false,
     true},
    {"env", "-u -C -S --unset --chdir --split-string", 0, false, false, false},
    {"nice", "-n --adjustment", 0, false, false, false},
    {"ionice", "-c -n -p -P -u --class --classdata --pid --pgid --uid", 0, false, false, false},
    {"nohup exec command builtin time unbuffer", "-a -f -o --format --output", 0, false, false,
     false},
    {"stdbuf", "-i -o -e", 0, false, false, false},
    {"timeout", "-s -k --signal --kill-after", 1, false, false, false},
    {"chroot", "--userspec --groups", 1, false, false, false},
    {"xargs",
     "-a -d -E -I -L -n -P -s --arg-file --delimiter --max-lines --max-args --max-procs "
     "--max-chars --process-slot-var",
     0, false, false, false},
    {"strace ltrace", "-o -e -p -s -u -P -E", 0, false, false, false},
    {"watch", "-n -d -g --interval --differences", 0, false, true, false},
    {"ssh", "-p -i -l -o -F -J -L -R -D -b -c -e -m -O -Q -S -W -w -E -B -I", 1, false, true,
     false},
};

const size_t risk_n_wrappers = sizeof risk_wrappers / sizeof risk_wrappers[0];

const char *const risk_interpreters =
    "sh bash zsh dash ksh mksh fish csh tcsh ash python python[0-9]* perl ruby node nodejs php "
    "lua lua[0-9]* tclsh source .";
const char *const risk_shells = "sh bash zsh dash ksh mksh fish csh tcsh ash";
const char *const risk_downloaders = "curl wget fetch aria2c http https";
const char *const risk_keywords = "! { } if then else elif fi do done while until";
