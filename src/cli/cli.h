/* Subcommands of the nabla tool that live in their own files. */
#ifndef NABLA_CLI_H
#define NABLA_CLI_H

int cli_train(int argc, char **argv);
int cli_gradcheck(int argc, char **argv);

#endif
